//! The baseline every bench compares with: the `cached` crate's `#[cached]` (4.x), over the
//! including module's `Customer` (its parent's `customer` and `Customer`), keyed as ours.

use super::{customer, Customer};

#[cached::proc_macro::cached(
    ttl_secs = 600,
    key = "String",
    convert = r#"{ format!("customer.{}", id) }"#
)]
pub async fn find(id: &str) -> Result<Customer, ()> {
    Ok(customer(id))
}
