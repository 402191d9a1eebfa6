//! The shared JT808 test vectors (`tests/fixtures/jt808_vectors.json`: real frames from the anchor
//! implementations' test suites and issue threads, JT808.md), read once per call from the copy
//! compiled into the test binary, so no test depends on its working directory.

use serde::Deserialize;
use serde_json::{Map, Value};

/// One vector of the file. `kind` is `frame`, `frame-fault` or `stream`; `expect` holds the typed
/// fields a `frame` vector must decode to.
#[derive(Debug, Deserialize)]
pub struct Vector {
    pub id: String,
    pub hex: String,
    pub version: Option<String>,
    pub msg_id: Option<String>,
    pub phone: Option<String>,
    pub serial: Option<u16>,
    pub pkg_total: Option<u16>,
    pub pkg_index: Option<u16>,
    pub body_len: Option<usize>,
    pub expect: Map<String, Value>,
    pub note: String,
    pub kind: String,
    pub group: Option<String>,
}

impl Vector {
    /// The vector's bytes. Whitespace is allowed; an odd trailing nibble is dropped, as Go's
    /// `hex.DecodeString` does in the go-jt808 test the stream vectors come from.
    pub fn bytes(&self) -> Vec<u8> {
        let mut h: String = self.hex.chars().filter(|c| !c.is_whitespace()).collect();
        if h.len() % 2 == 1 {
            h.pop();
        }
        hex::decode(&h).unwrap_or_else(|e| panic!("{}: bad hex: {e}", self.id))
    }

    /// The bytes when the hex is whole (an even digit count), else `None`: for uses that must not
    /// take a cut vector for a whole one.
    pub fn exact_bytes(&self) -> Option<Vec<u8>> {
        hex::decode(&self.hex).ok()
    }
}

/// Every vector, in file order.
pub fn all() -> Vec<Vector> {
    serde_json::from_str(include_str!("../fixtures/jt808_vectors.json")).expect("vector file parses")
}

/// The vector with this id.
pub fn find(id: &str) -> Vector {
    all()
        .into_iter()
        .find(|v| v.id == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// The bytes of the vector with this id (see [`Vector::bytes`]).
pub fn wire(id: &str) -> Vec<u8> {
    find(id).bytes()
}

/// The 18 packets of `yz-1205-18pkt-*` (a real multi-packet 0x1205 resource list), in index order.
pub fn resource_list_packets() -> Vec<Vec<u8>> {
    let all = all();
    (1..=18)
        .map(|i| {
            let id = format!("yz-1205-18pkt-{i:02}of18");
            all.iter()
                .find(|v| v.id == id)
                .unwrap_or_else(|| panic!("no vector {id}"))
                .bytes()
        })
        .collect()
}
