//! Why a replay or a bound could not be set up: the scenario's derived configuration, its fleet,
//! or an engine profile.

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Fleet(#[from] crate::allocator::pools::FleetError),
    #[error(transparent)]
    Profile(#[from] crate::capacity::profile::ProfileError),
    /// A trace or load that cannot be replayed (the message says what and where).
    #[error("{0}")]
    Input(String),
}

impl From<&str> for SimError {
    fn from(s: &str) -> Self {
        SimError::Input(s.into())
    }
}

impl From<String> for SimError {
    fn from(s: String) -> Self {
        SimError::Input(s)
    }
}
