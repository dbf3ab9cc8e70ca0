//! Confluent's wire format: magic byte 0, the schema id as 4 bytes big
//! endian, then the Avro binary body.

/// Bytes before the Avro body.
pub const HEADER_LEN: usize = 5;

/// Starts a framed payload for schema `id` in `out`.
pub fn put_header(out: &mut Vec<u8>, id: u32) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

/// Splits a framed payload into schema id and Avro body.
pub fn split(payload: &[u8]) -> Option<(u32, &[u8])> {
    if payload.len() < HEADER_LEN || payload[0] != 0 {
        return None;
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Some((id, &payload[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let mut v = Vec::new();
        super::put_header(&mut v, 0x0102_0304);
        v.extend_from_slice(b"body");
        assert_eq!(v[..5], [0, 1, 2, 3, 4]);
        assert_eq!(super::split(&v), Some((0x0102_0304, &b"body"[..])));
        assert_eq!(super::split(&[1, 0, 0, 0, 1]), None);
        assert_eq!(super::split(&[0, 0]), None);
    }
}
