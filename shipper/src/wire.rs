//! Protobuf wire-format primitives shared by the push request encoder (`batch::encode`) and the
//! structured metadata encoded with each file's labels (`labels::metadata`).

use prost::encoding::encoded_len_varint;

pub const WIRE_VARINT: u64 = 0;
pub const WIRE_LEN: u64 = 2;

/// A field's key: its number and wire type.
pub const fn key(field: u64, wire: u64) -> u64 {
    (field << 3) | wire
}

/// The encoded size of a length-delimited field of `len` bytes.
pub fn len_field(field: u64, len: usize) -> usize {
    encoded_len_varint(key(field, WIRE_LEN)) + encoded_len_varint(len as u64) + len
}
