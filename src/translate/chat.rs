//! OpenAI Chat Completions ⇄ Responses: the request translator, the streaming translator
//! (`chat.completion.chunk` frames then `data: [DONE]`) and `collect` for non-streaming clients.

mod request;
mod stream;

pub use request::request;
pub use stream::{ChatStream, collect};
