//! How values cross into bytes, for backends that store bytes.
//!
//! The in-process tier never serializes. A shared backend stores bytes: the call site hands it
//! a [`SerdeVTable`] of the value type (when the type is `Serialize + DeserializeOwned`), and
//! the backend's [`Codec`] picks the format. Swap the format by giving the backend another
//! codec.

use std::any::Any;
use std::sync::Arc;

/// Reads a value of one type from an erased deserializer.
pub type DeserializeFn = fn(
    &mut dyn erased_serde::Deserializer<'_>,
) -> Result<Arc<dyn Any + Send + Sync>, erased_serde::Error>;

/// Serializes and deserializes values of one type, erased.
pub struct SerdeVTable {
    /// The value type's name, part of the stored envelope: a value written under another type
    /// name is a miss.
    pub type_name: fn() -> &'static str,
    /// The value as `erased_serde::Serialize`, when it is of this type.
    pub serialize:
        for<'a> fn(&'a (dyn Any + Send + Sync)) -> Option<&'a dyn erased_serde::Serialize>,
    /// Reads a value of this type.
    pub deserialize: DeserializeFn,
}

impl std::fmt::Debug for SerdeVTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SerdeVTable")
            .field("type_name", &(self.type_name)())
            .finish_non_exhaustive()
    }
}

/// The vtable of `T`.
pub(crate) struct SerdeOf<T>(std::marker::PhantomData<T>);

impl<T> SerdeOf<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    pub(crate) const VTABLE: SerdeVTable = SerdeVTable {
        type_name: std::any::type_name::<T>,
        serialize: |value| {
            value
                .downcast_ref::<T>()
                .map(|v| v as &dyn erased_serde::Serialize)
        },
        deserialize: |de| {
            erased_serde::deserialize::<T>(de).map(|v| Arc::new(v) as Arc<dyn Any + Send + Sync>)
        },
    };
}

pub use erased_serde::{deserialize, Deserializer as ErasedDeserializer, Error as ErasedError};

/// An error of a [`Codec`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// A byte format for values (MessagePack, JSON, ...), over `erased_serde`.
pub trait Codec: Send + Sync + 'static {
    /// The format's name, stored in each envelope: bytes written in another format are a miss.
    fn name(&self) -> &'static str;
    /// Writes `value`.
    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, CodecError>;
    /// Reads `bytes` through `read`, which deserializes the value.
    fn decode(
        &self,
        bytes: &[u8],
        read: &mut dyn FnMut(
            &mut dyn erased_serde::Deserializer<'_>,
        ) -> Result<(), erased_serde::Error>,
    ) -> Result<(), CodecError>;
}

/// MessagePack with structs as maps (field names kept): compact, and self-describing enough
/// that a value written by an older version of a struct (a field added, renamed or retyped)
/// fails to decode, and so counts as a miss, instead of being misread.
#[cfg(feature = "redis")]
#[derive(Clone, Copy, Debug, Default)]
pub struct MessagePack;

/// The erased plumbing shared by the built-in codecs.
#[cfg(feature = "redis")]
fn encode_with<S>(value: &dyn erased_serde::Serialize, serializer: S) -> Result<(), CodecError>
where
    S: serde::Serializer,
{
    erased_serde::serialize(value, serializer)
        .map(|_| ())
        .map_err(|e| CodecError(e.to_string()))
}

#[cfg(feature = "redis")]
type Read<'r> =
    dyn FnMut(&mut dyn erased_serde::Deserializer<'_>) -> Result<(), erased_serde::Error> + 'r;

#[cfg(feature = "redis")]
fn decode_with<'de, D>(deserializer: D, read: &mut Read<'_>) -> Result<(), CodecError>
where
    D: serde::Deserializer<'de>,
{
    read(&mut <dyn erased_serde::Deserializer>::erase(deserializer))
        .map_err(|e| CodecError(e.to_string()))
}

#[cfg(feature = "redis")]
impl Codec for MessagePack {
    fn name(&self) -> &'static str {
        "msgpack"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        encode_with(
            value,
            &mut rmp_serde::Serializer::new(&mut out).with_struct_map(),
        )?;
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], read: &mut Read<'_>) -> Result<(), CodecError> {
        decode_with(&mut rmp_serde::Deserializer::from_read_ref(bytes), read)
    }
}

/// JSON, for stores that humans read.
#[cfg(feature = "redis")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Json;

#[cfg(feature = "redis")]
impl Codec for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn encode(&self, value: &dyn erased_serde::Serialize) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(128);
        encode_with(value, &mut serde_json::Serializer::new(&mut out))?;
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], read: &mut Read<'_>) -> Result<(), CodecError> {
        decode_with(&mut serde_json::Deserializer::from_slice(bytes), read)
    }
}
