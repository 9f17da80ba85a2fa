//! Report formats: text summaries, JSON, and the GitHub step summary.

pub mod audit;
pub mod bluegreen;
pub mod deploy;
pub mod diagnose;
pub mod fleet;
pub mod github;
pub mod netpol;
pub mod sarif;
