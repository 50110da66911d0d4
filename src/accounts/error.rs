//! The one error of reading an import file, shared by the reader of the file ([`super::import`])
//! and the reader of one entry ([`super::entry`]), so neither imports the other's module.

/// Why an import file was refused. Nothing from the file was imported. The message names where
/// the problem is (`line 3`, `accounts[2] field \`token\``) and never echoes a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ImportError {
    /// Where: `line N`, `accounts[i]`, `[i]`, or `file`; with ` field \`x\`` when one field is at fault.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl ImportError {
    /// An error about a whole entry.
    pub fn at(location: &str, message: impl std::fmt::Display) -> Self {
        ImportError {
            location: location.to_owned(),
            message: message.to_string(),
        }
    }

    /// An error about one field of an entry.
    pub fn field(location: &str, field: &str, message: impl std::fmt::Display) -> Self {
        ImportError {
            location: format!("{location} field `{field}`"),
            message: message.to_string(),
        }
    }
}
