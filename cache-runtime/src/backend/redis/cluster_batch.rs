//! A batch's reads and writes on a Redis Cluster. A cluster pipeline may not cross hash
//! slots, so the entries go one pipeline per slot (concurrently); their tags' versions, which
//! all live in the slot of the namespace, are read or checked in one call there.

use std::collections::{BTreeMap, HashMap};

use super::{Gate, PreparedPut, RedisBackend};
use crate::backend::{BackendError, EntryKey, Fetched};

/// How many hash slots a cluster has.
const SLOTS: u16 = 16_384;

/// The hash slot of `key`: CRC16 (XMODEM) of the key, or of its hash tag (the part between
/// the first `{` and the next `}`, when not empty), modulo 16384.
pub(super) fn slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let len = rest.iter().position(|b| *b == b'}')?;
            (len > 0).then(|| &rest[..len])
        })
        .unwrap_or(key);
    crc16(tagged) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// An entry read on a cluster whose tag versions are still to be read: its index in the
/// batch, its reply so far and its tags.
struct Unvouched {
    index: usize,
    parts: Vec<Vec<u8>>,
    tags: Vec<String>,
}

impl RedisBackend {
    /// Runs `script` once for each `(index, key)` of `keyed`, as `invoke` builds it: one
    /// pipeline per hash slot, the slots concurrently. Answers each index's reply.
    async fn per_slot<'s, T: redis::FromRedisValue + Send>(
        &self,
        script: &'s redis::Script,
        keyed: Vec<(usize, String)>,
        invoke: impl Fn(usize, &str) -> redis::ScriptInvocation<'s>,
    ) -> Result<Vec<(usize, T)>, BackendError> {
        let mut by_slot: BTreeMap<u16, Vec<(usize, String)>> = BTreeMap::new();
        for (index, key) in keyed {
            by_slot
                .entry(slot(key.as_bytes()))
                .or_default()
                .push((index, key));
        }
        let pipelines = by_slot.into_values().map(|group| {
            let mut pipe = redis::pipe();
            pipe.load_script(script).ignore();
            for (index, key) in &group {
                pipe.invoke_script(&invoke(*index, key));
            }
            async move {
                let replies: Vec<T> = self
                    .run(Gate::Breaker, |mut c| async move {
                        pipe.query_async(&mut c.conn).await
                    })
                    .await?;
                Ok::<_, BackendError>(group.into_iter().map(|(index, _)| index).zip(replies))
            }
        });
        let mut out = Vec::new();
        for replies in futures_util::future::join_all(pipelines).await {
            out.extend(replies?);
        }
        Ok(out)
    }

    /// [`Backend::get_many`](crate::backend::Backend::get_many) on a cluster: the entries one
    /// pipeline per slot, then the versions of the tags of those the feed does not vouch
    /// for, in one call per generation (one, but during a clear) on the tags' node.
    pub(super) async fn cluster_get_many(
        &self,
        keys: &[EntryKey<'_>],
        trusting_feed: bool,
    ) -> Result<Vec<Result<Option<Fetched>, BackendError>>, BackendError> {
        let readable = keys
            .iter()
            .enumerate()
            .filter(|(_, key)| key.serde.is_some())
            .map(|(index, key)| (index, self.entry_key(key)))
            .collect();
        let read_entry = &self.inner.scripts.read_entry;
        let entries: Vec<(usize, Option<Vec<Vec<u8>>>)> = self
            .per_slot(read_entry, readable, |_, key| read_entry.key(key))
            .await?;
        let mut out: Vec<Result<Option<Fetched>, BackendError>> =
            keys.iter().map(|_| Ok(None)).collect();
        // Entries whose versions are to be read: by generation, with their tags.
        let mut unvouched: HashMap<String, Vec<Unvouched>> = HashMap::new();
        for (index, parts) in entries {
            let Some(mut parts) = parts else {
                continue;
            };
            let (tags, generation) = match parts.as_slice() {
                [raw, names, generation, checked_at] => {
                    let (Ok(names), Ok(generation)) =
                        (std::str::from_utf8(names), std::str::from_utf8(generation))
                    else {
                        out[index] = self.decode(&keys[index], parts);
                        continue;
                    };
                    let tags: Vec<&str> = names.split('\0').filter(|t| !t.is_empty()).collect();
                    let vouched = trusting_feed
                        .then(|| self.vouched_versions(raw, &tags, generation, checked_at))
                        .flatten();
                    if let Some(versions) = vouched {
                        parts.truncate(2);
                        parts.extend(versions.iter().map(|v| v.to_string().into_bytes()));
                        out[index] = self.decode(&keys[index], parts);
                        continue;
                    }
                    let tags: Vec<String> = tags.into_iter().map(str::to_owned).collect();
                    (tags, generation.to_owned())
                }
                // Unreadable: decoding reports it.
                _ => {
                    out[index] = self.decode(&keys[index], parts);
                    continue;
                }
            };
            unvouched
                .entry(generation)
                .or_default()
                .push(Unvouched { index, parts, tags });
        }
        for (generation, entries) in unvouched {
            let mut tags: Vec<String> = entries
                .iter()
                .flat_map(|entry| entry.tags.iter().cloned())
                .collect();
            tags.sort_unstable();
            tags.dedup();
            let tag_keys = self.tag_keys(&generation, tags.iter().map(String::as_str));
            // `None`: the namespace is in another generation, and these entries are outdated.
            let Some(versions) = self.versions(generation.as_bytes(), &tag_keys).await? else {
                continue;
            };
            if let Ok(current) = generation.parse() {
                self.inner
                    .generation
                    .store(current, std::sync::atomic::Ordering::Release);
            }
            let of: HashMap<&str, &Vec<u8>> =
                tags.iter().map(String::as_str).zip(&versions).collect();
            for Unvouched {
                index,
                mut parts,
                tags: entry_tags,
            } in entries
            {
                parts.truncate(2);
                parts.extend(
                    entry_tags
                        .iter()
                        .map(|tag| of.get(tag.as_str()).map_or_else(Vec::new, |v| (*v).clone())),
                );
                out[index] = self.decode(&keys[index], parts);
            }
        }
        Ok(out)
    }

    /// [`Backend::put_many`](crate::backend::Backend::put_many) on a cluster: every stamp
    /// checked in one pipeline on the tags' node, then the entries whose stamp is current
    /// written, one pipeline per slot.
    pub(super) async fn cluster_put_many(
        &self,
        puts: &[(PreparedPut, String)],
    ) -> Result<(), BackendError> {
        let check = &self.inner.scripts.check;
        let stored: Vec<i64> = self
            .run(Gate::Breaker, |mut c| {
                let mut pipe = redis::pipe();
                pipe.load_script(check).ignore();
                for (put, generation) in puts {
                    pipe.invoke_script(&self.put_invocation(check, &c, put, generation, true));
                }
                async move { pipe.query_async(&mut c.conn).await }
            })
            .await?;
        // The check answered the sequence at which it found the stamp current (or -1).
        let current = stored
            .iter()
            .enumerate()
            .filter(|(_, seq)| **seq >= 0)
            .map(|(index, _)| (index, puts[index].0.redis_key.clone()))
            .collect();
        let write_entry = &self.inner.scripts.write_entry;
        let _: Vec<(usize, i64)> = self
            .per_slot(write_entry, current, |index, key| {
                let (put, generation) = &puts[index];
                let mut invocation = write_entry.key(key);
                invocation
                    .arg(&put.bytes)
                    .arg(&put.tags)
                    .arg(generation)
                    .arg(put.ttl)
                    .arg(stored[index]);
                invocation
            })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::slot;

    #[test]
    fn slots_are_those_redis_computes() {
        // The examples of the Redis Cluster specification.
        // CRC16/XMODEM of "123456789" is 0x31C3, below 16384.
        assert_eq!(slot(b"123456789"), 0x31C3);
        assert_eq!(slot(b"{user1000}.following"), slot(b"{user1000}.followers"));
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_ne!(
            slot(b"foo{}{bar}"),
            slot(b"bar"),
            "an empty tag hashes the whole key"
        );
        assert_eq!(slot(b"foo{{bar}}zap"), slot(b"{bar"));
    }
}
