//! Checkpoints: fetching them, reading them without running code, and matching their keys to the
//! network's parameters.

pub mod checkpoint;
pub mod fetch;
pub mod inventory;
pub mod names;
pub mod pickle;
