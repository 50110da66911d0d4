//! A whole upstream response gathered in order — what `collect` turns into a non-streaming
//! answer: the output blocks (reasoning, text, tool calls) and how it ended.

use super::responses::{Happening, Normalizer, Outcome, Usage};
use super::{StreamEnd, TranslateError};
use serde_json::Value;

/// One output block, in upstream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Block {
    /// Reasoning summary text and the reasoning item's encrypted content.
    Thinking {
        item: usize,
        text: String,
        signature: Option<String>,
    },
    /// Assistant text.
    Text { item: usize, text: String },
    /// A tool call with its arguments (a JSON text).
    Tool {
        item: usize,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// The collected response: blocks, usage, the upstream id and how it ended.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    pub blocks: Vec<Block>,
    pub usage: Option<Usage>,
    pub response_id: Option<String>,
    pub created_at: Option<i64>,
    pub outcome: Option<Outcome>,
}

impl Transcript {
    /// Gathers a whole upstream stream; a stream without a terminal event is a premature close.
    pub fn gather(events: &[Value]) -> Transcript {
        let mut n = Normalizer::new();
        let mut t = Transcript::default();
        for ev in events {
            for h in n.on_event(ev) {
                t.push(h);
            }
        }
        for h in n.finish(StreamEnd::PrematureClose) {
            t.push(h);
        }
        t
    }

    /// The usable outcome, or the error to answer with instead.
    pub fn result(&self) -> Result<&Outcome, TranslateError> {
        match &self.outcome {
            Some(Outcome::Failed(e)) => Err(e.clone()),
            Some(o) => Ok(o),
            None => Err(TranslateError::premature_close()),
        }
    }

    /// Whether any tool call was made (decides `tool_calls` / `tool_use` stop reasons).
    pub fn has_tool_calls(&self) -> bool {
        self.blocks.iter().any(|b| matches!(b, Block::Tool { .. }))
    }

    fn push(&mut self, h: Happening) {
        match h {
            Happening::Created { id, created_at } => {
                self.response_id = id;
                self.created_at = created_at;
            }
            Happening::Text { item, delta } => match self.blocks.last_mut() {
                Some(Block::Text { item: i, text }) if *i == item => text.push_str(&delta),
                _ => self.blocks.push(Block::Text { item, text: delta }),
            },
            Happening::Reasoning { item, delta } => match self.blocks.last_mut() {
                Some(Block::Thinking { item: i, text, .. }) if *i == item => text.push_str(&delta),
                _ => self.blocks.push(Block::Thinking {
                    item,
                    text: delta,
                    signature: None,
                }),
            },
            Happening::ToolStart {
                item,
                call_id,
                name,
            } => self.blocks.push(Block::Tool {
                item,
                call_id,
                name,
                arguments: String::new(),
            }),
            Happening::ToolArgs { item, delta } => {
                if let Some(Block::Tool { arguments, .. }) = self.block_of(item) {
                    arguments.push_str(&delta);
                }
            }
            Happening::ItemDone { item, signature } => {
                if let Some(Block::Thinking { signature: s, .. }) = self.block_of(item) {
                    *s = signature;
                }
            }
            Happening::End { outcome, usage } => {
                self.outcome = Some(outcome);
                self.usage = usage;
            }
        }
    }

    fn block_of(&mut self, item: usize) -> Option<&mut Block> {
        self.blocks.iter_mut().rev().find(|b| match b {
            Block::Thinking { item: i, .. }
            | Block::Text { item: i, .. }
            | Block::Tool { item: i, .. } => *i == item,
        })
    }
}
