//! The price table (#18): shipped prices per model, overridden by `[llm.prices]`, and
//! the cost of a token usage.
