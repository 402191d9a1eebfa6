//! Fuzz target `pcap_import`: the property is [`checks::pcap_import`] (shared with tests/fuzz_corpus.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::pcap_import(data));
