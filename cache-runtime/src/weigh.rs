//! What an in-process entry weighs, for a cache bounded by memory
//! ([`CacheBuilder::max_memory`](crate::CacheBuilder::max_memory)).
//!
//! An entry's weight is an estimate of the bytes it keeps alive: what the in-process tier
//! spends on any entry ([`ENTRY_BYTES`], measured by `benches/memory.rs`), its key, one
//! pointer per tag, the value's own size, and the bytes the value owns on the heap. The last
//! is read by walking the value with a serializer that only counts (nothing is written): a
//! string counts its length, a number its width, a sequence or map its elements (a string
//! in one also counts its `String`). Capacity
//! beyond a string's length and the allocator's rounding are not seen, so the estimate is low
//! by those. A value that is not `Serialize` counts its inline size only.

use serde::ser::{self, Serialize};

use crate::codec::SerdeVTable;

/// What the in-process tier spends on an entry besides its key, tags and value: moka's
/// entry (its node, its place in the access and write orders and in the expiry timer wheel,
/// its frequency sketch), this crate's entry header, and the entry's place in the read index
/// once it has been read. Measured by `benches/memory.rs` (the untagged variant, less the
/// keys and values alone, both as the allocator handed them out, at 100,000 entries).
pub(crate) const ENTRY_BYTES: usize = 424;

/// The weight of an entry: `key_len` bytes of key, `tags` tags, a value of `inline` bytes
/// whose heap is walked through `serde` when it can be.
pub(crate) fn entry_weight(
    key_len: usize,
    tags: usize,
    inline: usize,
    value: &(dyn std::any::Any + Send + Sync),
    serde: Option<&SerdeVTable>,
) -> u32 {
    let heap = serde
        .and_then(|serde| (serde.serialize)(value))
        .map_or(0, heap_bytes);
    let bytes = ENTRY_BYTES + key_len + tags * std::mem::size_of::<usize>() + inline + heap;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The bytes `value` owns on the heap, as its serialization counts them.
pub(crate) fn heap_bytes(value: &dyn erased_serde::Serialize) -> usize {
    let mut sizer = Sizer { bytes: 0, depth: 0 };
    match erased_serde::serialize(value, &mut sizer) {
        Ok(()) => sizer.bytes,
        Err(_) => 0,
    }
}

/// Counts bytes instead of writing them. Scalars at the top level of the value are inline
/// (counted by its size), inside a sequence or map they are on the heap.
struct Sizer {
    bytes: usize,
    depth: usize,
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not serializable")
    }
}

impl std::error::Error for Never {}

impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Never
    }
}

impl Sizer {
    fn scalar(&mut self, width: usize) -> Result<(), Never> {
        if self.depth > 0 {
            self.bytes += width;
        }
        Ok(())
    }
    /// Text or bytes: on the heap; inside a collection, their `String` or `Vec` is too.
    fn owned(&mut self, len: usize) -> Result<(), Never> {
        self.bytes += len;
        if self.depth > 0 {
            self.bytes += std::mem::size_of::<String>();
        }
        Ok(())
    }
    fn open(&mut self) -> Result<&mut Self, Never> {
        self.depth += 1;
        Ok(self)
    }
    fn close(&mut self) -> Result<(), Never> {
        self.depth -= 1;
        Ok(())
    }
}

impl ser::Serializer for &mut Sizer {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, _: bool) -> Result<(), Never> {
        self.scalar(1)
    }
    fn serialize_i8(self, _: i8) -> Result<(), Never> {
        self.scalar(1)
    }
    fn serialize_i16(self, _: i16) -> Result<(), Never> {
        self.scalar(2)
    }
    fn serialize_i32(self, _: i32) -> Result<(), Never> {
        self.scalar(4)
    }
    fn serialize_i64(self, _: i64) -> Result<(), Never> {
        self.scalar(8)
    }
    fn serialize_i128(self, _: i128) -> Result<(), Never> {
        self.scalar(16)
    }
    fn serialize_u8(self, _: u8) -> Result<(), Never> {
        self.scalar(1)
    }
    fn serialize_u16(self, _: u16) -> Result<(), Never> {
        self.scalar(2)
    }
    fn serialize_u32(self, _: u32) -> Result<(), Never> {
        self.scalar(4)
    }
    fn serialize_u64(self, _: u64) -> Result<(), Never> {
        self.scalar(8)
    }
    fn serialize_u128(self, _: u128) -> Result<(), Never> {
        self.scalar(16)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Never> {
        self.scalar(4)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Never> {
        self.scalar(8)
    }
    fn serialize_char(self, _: char) -> Result<(), Never> {
        self.scalar(4)
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.owned(v.len())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        self.owned(v.len())
    }
    fn serialize_none(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Never> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        self.open()
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        self.open()
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }
}

/// A sequence or map opened one level of heap; tuples and structs are inline in their parent.
macro_rules! compound {
    ($trait:ident, $element:ident $(, $key:ident)?; $end:ident) => {
        impl ser::$trait for &mut Sizer {
            type Ok = ();
            type Error = Never;
            $(
                fn $key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Never> {
                    key.serialize(&mut **self)
                }
            )?
            fn $element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                compound!(@end self $end)
            }
        }
    };
    (@end $self:ident close) => { $self.close() };
    (@end $self:ident inline) => { Ok(()) };
}

compound!(SerializeSeq, serialize_element; close);
compound!(SerializeTuple, serialize_element; inline);
compound!(SerializeTupleStruct, serialize_field; inline);
compound!(SerializeTupleVariant, serialize_field; inline);
compound!(SerializeMap, serialize_value, serialize_key; close);

/// A struct's fields are inline in its parent, whether the struct is a variant or not.
macro_rules! named_fields {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Sizer {
            type Ok = ();
            type Error = Never;
            fn serialize_field<T: ?Sized + Serialize>(
                &mut self,
                _: &'static str,
                value: &T,
            ) -> Result<(), Never> {
                value.serialize(&mut **self)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
            }
        }
    )*};
}

named_fields!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::heap_bytes;

    #[derive(serde::Serialize)]
    struct Customer {
        id: u64,
        name: String,
        tags: Vec<String>,
        scores: Vec<u32>,
    }

    #[test]
    fn the_heap_of_a_value_is_its_strings_and_its_collections_elements() {
        let customer = Customer {
            id: 7,
            name: "Ann".to_owned(),
            tags: vec!["vip".to_owned(), "eu".to_owned()],
            scores: vec![1, 2, 3],
        };
        // "Ann": 3; the tags: 3 + 2 bytes of text and two `String`s in the `Vec`'s buffer;
        // the scores: 3 × 4 bytes; the id is inline in the struct.
        assert_eq!(heap_bytes(&customer), 3 + (3 + 2 + 2 * 24) + 12);
        assert_eq!(heap_bytes(&7u64), 0, "a number owns no heap");
        assert_eq!(heap_bytes(&Some("abc".to_owned())), 3);
        assert_eq!(heap_bytes(&vec![0u8; 1000]), 1000);
    }
}
