//! The tags a cached value carries, taken from the value (`result_tags` in the annotations of
//! [`CachedCustomerRepository`](super::CachedCustomerRepository)).

use cache_runtime::{CacheTags, TagSink};

use crate::domain::Customer;

/// Every cached view of a customer carries `customer.<id>`, so saving or deleting it drops
/// them all: its id lookup, every e-mail lookup that found it (the old address included), and
/// every list page it is on.
impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        // Encoded as the `customer.{id}` templates encode it, so that the tags match.
        tags.push_encoded("customer.", &self.id);
    }
}

#[cfg(test)]
mod tests {
    use cache_runtime::{CacheTags, TagSink};

    use crate::domain::{Customer, CustomerStatus};

    #[test]
    fn a_customer_is_tagged_with_its_encoded_id() {
        let customer = Customer {
            id: "acme.42".into(),
            name: "Ann".into(),
            email: "ann@example.com".into(),
            status: CustomerStatus::Active,
            created_at: 0,
            version: 0,
        };
        let mut sink = TagSink::default();
        Some(vec![customer]).cache_tags(&mut sink);
        assert_eq!(sink.tags(), ["customer.acme%2E42"]);
    }
}
