//! DNS checker (being built).
