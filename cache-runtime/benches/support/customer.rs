//! The value the benchmarks cache: a customer of three short fields.

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
}

pub fn customer(id: &str) -> Customer {
    Customer {
        id: id.to_owned(),
        name: "Ann Example".to_owned(),
        email: "ann@example.com".to_owned(),
    }
}
