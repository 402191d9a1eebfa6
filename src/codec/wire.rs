//! Primitives for reading and writing bodies (placeholder, filled in by the body work).
