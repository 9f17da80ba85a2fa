//! Server-side apply with field manager `pake`.

/// The field manager pake applies with. Conflicts name the other manager.
pub const FIELD_MANAGER: &str = "pake";
