//! A minimal protobuf encoder for the subset of `onnx.proto` that Arbor writes.
//!
//! Arbor builds its graphs itself instead of depending on a protobuf code
//! generator: the graph is a few dozen node kinds, the wire format is small,
//! and owning it keeps the build free of `protoc`. Field numbers follow
//! `onnx/onnx.proto3` (IR version 8).

/// Appends protobuf fields to a byte buffer.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// The encoded message.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(((field as u64) << 3) | wire as u64);
    }

    /// A varint field (int32, int64, enum, bool).
    pub fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.varint(v as u64);
    }

    /// A 32-bit float field.
    pub fn float(&mut self, field: u32, v: f32) {
        self.key(field, 5);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length-delimited field holding raw bytes.
    pub fn bytes(&mut self, field: u32, v: &[u8]) {
        self.key(field, 2);
        self.varint(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    /// A length-delimited UTF-8 string field.
    pub fn string(&mut self, field: u32, v: &str) {
        self.bytes(field, v.as_bytes());
    }

    /// An embedded message.
    pub fn message(&mut self, field: u32, m: Encoder) {
        self.bytes(field, &m.buf);
    }

    /// A packed repeated int64 field.
    pub fn packed_ints(&mut self, field: u32, vs: &[i64]) {
        let mut inner = Encoder::new();
        for &v in vs {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_wire_format() {
        let mut e = Encoder::new();
        e.int(1, 300);
        // key = (1 << 3) | 0 = 0x08; 300 = 0b1_0010_1100 -> 0xAC 0x02
        assert_eq!(e.finish(), vec![0x08, 0xAC, 0x02]);
        let mut e = Encoder::new();
        e.int(2, -1);
        let b = e.finish();
        assert_eq!(b.len(), 1 + 10, "negative int64 is a 10-byte varint");
    }

    #[test]
    fn strings_are_length_delimited() {
        let mut e = Encoder::new();
        e.string(4, "Add");
        assert_eq!(e.finish(), vec![0x22, 3, b'A', b'd', b'd']);
    }
}
