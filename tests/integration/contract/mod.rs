//! Black-box tests written against the reference contract (../shared/reference),
//! not against the implementation.
