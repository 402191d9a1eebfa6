//! `serve`.
