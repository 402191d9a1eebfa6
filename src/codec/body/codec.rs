//! One signature for every body ([`BodyCodec`]), so the dispatch in `mod.rs` is a table of ids
//! and types instead of a hand-written match per operation, and [`flat_body!`] for the many
//! bodies that are a fixed run of integer and BCD fields: their layout is written once, as the
//! struct's field list, and read, written and (for platform commands) built from TOML from it.

use super::*;
use crate::codec::header::Version;
use crate::codec::wire::{Reader, WireError};

/// A typed body: decodes from its exact bytes and encodes back to them. `version` is the
/// header's; bodies whose layout does not depend on it ignore it.
pub trait BodyCodec: Sized {
    /// Decodes the (reassembled) body of a message under a header of `version`.
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError>;
    /// Appends the body's bytes.
    fn encode_body(&self, version: Version, out: &mut Vec<u8>);
}

impl<T: BodyCodec> BodyCodec for Box<T> {
    fn decode_body(b: &[u8], version: Version) -> Result<Self, WireError> {
        T::decode_body(b, version).map(Box::new)
    }
    fn encode_body(&self, version: Version, out: &mut Vec<u8>) {
        (**self).encode_body(version, out)
    }
}

/// Ends a flat body: bytes after the last field are an error naming it.
pub(crate) fn finish_flat(r: &Reader<'_>, fields: &[&'static str]) -> Result<(), WireError> {
    r.finish(fields.last().copied().unwrap_or("body"))
}

/// Declares a body that is a fixed run of [`WireField`](crate::codec::wire::WireField)s: the
/// struct (serde both ways, unknown keys refused) and its [`BodyCodec`], bytes in field order,
/// nothing left over.
macro_rules! flat_body {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name { $( $(#[$fm])* pub $f: $t, )* }

        impl $crate::codec::body::codec::BodyCodec for $name {
            #[allow(unused_mut)]
            fn decode_body(
                b: &[u8],
                _version: $crate::codec::header::Version,
            ) -> Result<Self, $crate::codec::wire::WireError> {
                let mut r = $crate::codec::wire::Reader::new(b);
                let v = $name { $( $f: $crate::codec::wire::WireField::read(&mut r, stringify!($f))?, )* };
                $crate::codec::body::codec::finish_flat(&r, &[$(stringify!($f)),*])?;
                Ok(v)
            }
            fn encode_body(&self, _version: $crate::codec::header::Version, out: &mut Vec<u8>) {
                let _ = &out;
                $( $crate::codec::wire::WireField::write(&self.$f, out); )*
            }
        }
    };
}

/// [`BodyCodec`] for the bodies written before the trait, by the shape of their inherent
/// `decode`/`encode`.
macro_rules! codec_via {
    (plain: $($t:ty),*) => {$(
        impl BodyCodec for $t {
            fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> { <$t>::decode(b) }
            fn encode_body(&self, _: Version, out: &mut Vec<u8>) { self.encode(out) }
        }
    )*};
    (versioned: $($t:ty),*) => {$(
        impl BodyCodec for $t {
            fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> { <$t>::decode(b, v) }
            fn encode_body(&self, _: Version, out: &mut Vec<u8>) { self.encode(out) }
        }
    )*};
}

codec_via!(plain: GeneralResponse, RegisterResponse, Location, BatchLocation, MediaUploadResponse,
    AvAttributes, AvResourceList, FileUploadComplete, LiveAvRequest, LiveAvControl, AvResourceQuery,
    FileUploadCommand, FileUploadControl);
codec_via!(versioned: Register, Auth, MediaUpload);

impl BodyCodec for EmptyBody {
    fn decode_body(b: &[u8], _: Version) -> Result<Self, WireError> {
        Ok(EmptyBody::decode(b))
    }
    fn encode_body(&self, _: Version, out: &mut Vec<u8>) {
        self.encode(out)
    }
}

impl BodyCodec for RetransmitRequest {
    fn decode_body(b: &[u8], v: Version) -> Result<Self, WireError> {
        RetransmitRequest::decode(b, v)
    }
    fn encode_body(&self, v: Version, out: &mut Vec<u8>) {
        self.encode(v, out)
    }
}
