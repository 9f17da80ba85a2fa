//! Workflows: which steps run, in what order, and the executor that runs them
//! with verification, a journal, rollback, the lock and release history.

pub mod definition;
pub mod executor;
pub mod fleet;
pub mod history;
pub mod lock;
pub mod netpol;
pub mod recovery;
pub mod release;
pub mod rollback;
pub mod signals;
pub mod step;
pub mod wait;
