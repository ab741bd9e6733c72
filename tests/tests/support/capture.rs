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

struct Collect(Captured);

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "cache_runtime" {
            return;
        }
        let mut fields = Event::new();
        fields.insert("level".into(), event.metadata().level().to_string());
        event.record(&mut Fields(&mut fields));
        self.0 .0.lock().push(fields);
    }
}

/// Captures events on this thread until the guard is dropped.
pub fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry().with(Collect(captured.clone()));
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}
