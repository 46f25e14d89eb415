//! The STS credential source (placeholder while it is written).
