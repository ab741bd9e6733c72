//! The bytes a byte-storing backend keeps for an entry: a header (format, value type, expiry,
//! tag versions) and the encoded value. Anything that does not parse, or was written by
//! another codec or for another value type, is reported as corrupt: a miss, never a panic.

use super::EntryMeta;

/// `CR2`: tag counts are `u32` (`CR1` had `u16`, and is read as corrupt: a miss).
const MAGIC: &[u8; 3] = b"CR2";

/// A parsed envelope, borrowing the bytes.
pub(crate) struct Envelope<'a> {
    pub(crate) codec: &'a str,
    pub(crate) type_name: &'a str,
    pub(crate) meta: EntryMeta,
    pub(crate) versions: Vec<u64>,
    pub(crate) payload: &'a [u8],
}

pub(crate) fn write(
    codec: &str,
    type_name: &str,
    meta: &EntryMeta,
    versions: &[u64],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + type_name.len() + payload.len() + versions.len() * 8);
    out.extend_from_slice(MAGIC);
    out.push(codec.len().min(255) as u8);
    out.extend_from_slice(&codec.as_bytes()[..codec.len().min(255)]);
    out.extend_from_slice(&(type_name.len().min(u16::MAX as usize) as u16).to_le_bytes());
    out.extend_from_slice(&type_name.as_bytes()[..type_name.len().min(u16::MAX as usize)]);
    for n in [meta.fresh_until, meta.stale_until, meta.load_micros] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    let count = u32::try_from(versions.len()).expect("fewer than 2^32 tags");
    out.extend_from_slice(&count.to_le_bytes());
    for v in versions {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(payload);
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn str(&mut self, n: usize) -> Option<&'a str> {
        std::str::from_utf8(self.take(n)?).ok()
    }
}

pub(crate) fn read(bytes: &[u8]) -> Option<Envelope<'_>> {
    let mut r = Reader(bytes);
    if r.take(3)? != MAGIC {
        return None;
    }
    let codec_len = r.u8()? as usize;
    let codec = r.str(codec_len)?;
    let type_len = r.u16()? as usize;
    let type_name = r.str(type_len)?;
    let meta = EntryMeta {
        fresh_until: r.u64()?,
        stale_until: r.u64()?,
        load_micros: r.u64()?,
    };
    let count = r.u32()? as usize;
    if count > r.0.len() / 8 {
        return None;
    }
    let versions = (0..count).map(|_| r.u64()).collect::<Option<Vec<u64>>>()?;
    Some(Envelope {
        codec,
        type_name,
        meta,
        versions,
        payload: r.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let meta = EntryMeta {
            fresh_until: 5,
            stale_until: 9,
            load_micros: 7,
        };
        let bytes = write("msgpack", "app::Customer", &meta, &[1, 2], b"payload");
        let env = read(&bytes).unwrap();
        assert_eq!(
            (
                env.codec,
                env.type_name,
                env.meta,
                env.versions,
                env.payload
            ),
            (
                "msgpack",
                "app::Customer",
                meta,
                vec![1, 2],
                &b"payload"[..]
            )
        );
        assert!(read(b"garbage").is_none());
        assert!(read(&bytes[..20]).is_none());
        assert!(read(b"").is_none());
    }

    #[test]
    fn more_than_65535_tags_round_trip() {
        let meta = EntryMeta {
            fresh_until: 1,
            stale_until: 2,
            load_micros: 3,
        };
        let versions: Vec<u64> = (0..70_000).collect();
        let bytes = write("msgpack", "T", &meta, &versions, b"p");
        let env = read(&bytes).unwrap();
        assert_eq!(env.versions, versions);
        assert_eq!(env.payload, b"p");
    }
}
