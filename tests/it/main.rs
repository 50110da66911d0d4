mod translate;
fn main() {}
