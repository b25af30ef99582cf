//! Errors of job definitions: every [`ConfigError`] names the file, the line and column, and
//! the key; a [`ConfigErrors`] holds all errors found in one pass.

use std::fmt;

/// A place in a YAML document: 1-based line and column (0 when unknown).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Line, counting from 1; 0 when unknown.
    pub line: u64,
    /// Column, counting from 1; 0 when unknown.
    pub column: u64,
}

impl Position {
    /// An unknown position.
    pub const UNKNOWN: Position = Position { line: 0, column: 0 };

    /// The position at `line` and `column` (both 1-based).
    pub fn new(line: u64, column: u64) -> Self {
        Position { line, column }
    }

    /// Whether the position is known.
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

impl From<serde_saphyr::Location> for Position {
    fn from(location: serde_saphyr::Location) -> Self {
        Position::new(location.line(), location.column())
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One error in a job definition: `origin:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    origin: String,
    position: Position,
    message: String,
}

impl ConfigError {
    /// An error at `position` of the document named `origin` (usually its path).
    pub fn new(origin: impl Into<String>, position: Position, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            position,
            message: message.into(),
        }
    }

    /// The document the error is in (its path, or the name given to
    /// [`JobDefinition::from_str`](crate::model::JobDefinition::from_str)).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Where in the document the error is.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The line (1-based; 0 when unknown).
    pub fn line(&self) -> u64 {
        self.position.line
    }

    /// The column (1-based; 0 when unknown).
    pub fn column(&self) -> u64 {
        self.position.column
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.position.is_known() {
            write!(f, "{}:{}: {}", self.origin, self.position, self.message)
        } else {
            write!(f, "{}: {}", self.origin, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for ikkatsu_core::Error {
    fn from(err: ConfigError) -> Self {
        ikkatsu_core::Error::config(err.to_string()).with_source(err)
    }
}

/// All the errors found in a job definition, in document order. Displayed one per line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// No errors yet.
    pub fn new() -> Self {
        ConfigErrors::default()
    }

    /// Adds an error.
    pub fn push(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Whether there are no errors.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The errors, in document order.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// Iterates over the errors.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// Sorts by position and removes exact duplicates.
    pub(crate) fn normalize(&mut self) {
        self.errors.sort_by_key(|e| e.position);
        self.errors.dedup();
    }

    /// `Ok(value)` when there are no errors, else `Err(self)`.
    pub(crate) fn into_result<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.normalize();
            Err(self)
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigErrors> for ikkatsu_core::Error {
    fn from(errors: ConfigErrors) -> Self {
        let message = match errors.len() {
            1 => errors.to_string(),
            n => format!("{n} errors in the job definition:\n{errors}"),
        };
        ikkatsu_core::Error::config(message).with_source(errors)
    }
}
