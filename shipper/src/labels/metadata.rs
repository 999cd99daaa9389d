//! Structured metadata (Loki 3) in the wire form the push request carries, encoded once per file
//! (or per line when stages add to it) and appended to each entry as is.

use crate::wire::{key, len_field, WIRE_LEN};
use bytes::{BufMut, Bytes};
use prost::encoding::encode_varint;

/// Structured metadata (Loki 3): the `EntryAdapter.structuredMetadata` fields (3, repeated
/// `LabelPairAdapter{name = 1, value = 2}`) of these pairs, encoded once (per file, or per line when
/// stages add to them) and then appended to the entry as they are.
pub fn metadata_fields(pairs: &[(String, String)]) -> Bytes {
    metadata_after(&[], pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// `before` (fields already encoded, e.g. a file's) followed by the fields of `pairs`, in one buffer.
pub fn metadata_after<'a>(before: &[u8], pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Bytes {
    let len: usize = pairs
        .clone()
        .map(|(n, v)| len_field(3, len_field(1, n.len()) + len_field(2, v.len())))
        .sum();
    let mut buf = Vec::with_capacity(before.len() + len);
    buf.put_slice(before);
    for (name, value) in pairs {
        encode_varint(key(3, WIRE_LEN), &mut buf);
        encode_varint((len_field(1, name.len()) + len_field(2, value.len())) as u64, &mut buf);
        for (field, s) in [(1, name), (2, value)] {
            encode_varint(key(field, WIRE_LEN), &mut buf);
            encode_varint(s.len() as u64, &mut buf);
            buf.put_slice(s.as_bytes());
        }
    }
    Bytes::from(buf)
}
