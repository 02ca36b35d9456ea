//! Document names.

use std::borrow::Borrow;
use std::fmt;

use thiserror::Error;

/// Longest document name, in bytes of UTF-8 (the rule every Chroom layer applies:
/// [`chroom_types::check_doc_name`]).
pub const MAX_NAME_BYTES: usize = chroom_types::MAX_DOC_NAME_BYTES;

/// The name of one of a room's documents: 1 to [`MAX_NAME_BYTES`] bytes of text, not blank,
/// without control characters, so it can be shown, logged and used as a store key as it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DocName(String);

/// Why a string is not a document name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct NameError(&'static str);

impl DocName {
    /// Checks a name.
    pub fn new(name: &str) -> Result<Self, NameError> {
        chroom_types::check_doc_name(name).map_err(NameError)?;
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
        for bad in ["", "  ", "a\nb"] {
            assert!(DocName::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            DocName::new(&"x".repeat(MAX_NAME_BYTES))
                .unwrap()
                .as_str()
                .len(),
            64
        );
        assert!(DocName::new(&"é".repeat(33)).is_err());
    }
}
