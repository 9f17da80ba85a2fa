//! Report formats: text summaries, JSON, and the GitHub step summary.

pub mod deploy;
