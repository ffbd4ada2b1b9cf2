//! OpenAI chat/completions ↔ Anthropic messages translation (#18): requests, JSON
//! responses, SSE streams event by event, and errors.
