//! Use cases.

mod update_customer;

pub use update_customer::{
    Precondition, UpdateCustomerCommand, UpdateCustomerCommandHandler, ATTEMPTS,
};
