use thiserror::Error;

/// A rule of the model was broken by some input. Always names the field.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
}

impl ModelError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ModelError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}
