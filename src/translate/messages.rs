//! Anthropic Messages ⇄ Responses: the request translator, the streaming translator
//! (`message_start` … `message_stop`, plus `ping` frames on demand), `collect` for
//! non-streaming clients, and the `count_tokens` estimate.

mod options;
mod request;
mod stream;
mod tokens;

pub use request::request;
pub use stream::{MessagesStream, collect, ping};
pub use tokens::count_tokens;
