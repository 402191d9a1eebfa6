//! Decoder benchmark (filled in with the codec work).
fn main() {}
