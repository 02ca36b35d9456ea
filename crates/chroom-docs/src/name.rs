//! Document names.

use std::borrow::Borrow;
use std::fmt;

use thiserror::Error;

/// Longest document name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 64;

/// The name of one of a room's documents: 1 to [`MAX_NAME_BYTES`] bytes of text without
/// control characters, so it can be shown, logged and used as a store key as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocName(String);

/// Why a string is not a document name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name holds a control character (a newline, an escape, ...).
    #[error("a document name holds no control characters")]
    ControlCharacter,
    /// The name is empty.
    #[error("a document name is not empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("a document name has at most {max} bytes, not {len}")]
    TooLong {
        /// The name's length in bytes.
        len: usize,
        /// [`MAX_NAME_BYTES`].
        max: usize,
    },
}

impl DocName {
    /// Checks a name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong {
                len: name.len(),
                max: MAX_NAME_BYTES,
            });
        }
        if name.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for DocName {
    type Error = NameError;

    fn try_from(name: &str) -> Result<Self, NameError> {
        Self::new(name)
    }
}

impl fmt::Display for DocName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Names compare as their strings do, so maps keyed by name can be looked up by `&str`.
impl Borrow<str> for DocName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for DocName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!(
            DocName::new("Notes — week 3").unwrap().as_str(),
            "Notes — week 3"
        );
        assert_eq!(DocName::new(""), Err(NameError::Empty));
        assert_eq!(DocName::new("a\nb"), Err(NameError::ControlCharacter));
        assert_eq!(
            DocName::new(&"x".repeat(MAX_NAME_BYTES))
                .unwrap()
                .as_str()
                .len(),
            64
        );
        assert_eq!(
            DocName::new(&"é".repeat(33)),
            Err(NameError::TooLong { len: 66, max: 64 })
        );
    }
}
