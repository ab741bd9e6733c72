//! Collects `cache_runtime` tracing events with their fields, for assertions.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

pub type Event = BTreeMap<String, String>;

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<Event>>>);

impl Captured {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().clone()
    }

    /// The events whose `cache.op` is `op`.
    pub fn ops(&self, op: &str) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.get("cache.op").map(String::as_str) == Some(op))
            .collect()
    }

    pub fn clear(&self) {
        self.0.lock().clear();
    }
}

struct Fields<'a>(&'a mut Event);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            format!("{value:?}").trim_matches('"').to_string(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// Routes events to the capture active on the emitting thread. Installed once, globally: a
/// per-test scoped subscriber races with other test threads over tracing's callsite interest
/// cache, and then misses events.
struct Collect;

thread_local! {
    static ACTIVE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "cache_runtime" {
            return;
        }
        let Some(captured) = ACTIVE.with(|a| a.borrow().clone()) else {
            return;
        };
        let mut fields = Event::new();
        fields.insert("level".into(), event.metadata().level().to_string());
        event.record(&mut Fields(&mut fields));
        captured.0.lock().push(fields);
    }
}

/// Stops capturing when dropped.
pub struct CaptureGuard;

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.borrow_mut().take());
    }
}

/// Captures the `cache_runtime` events emitted on this thread until the guard is dropped.
pub fn capture() -> (Captured, CaptureGuard) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Collect))
            .expect("no other global subscriber");
        tracing::callsite::rebuild_interest_cache();
    });
    let captured = Captured::default();
    ACTIVE.with(|a| *a.borrow_mut() = Some(captured.clone()));
    (captured, CaptureGuard)
}
