//! LLM metrics (#18): cost, token kinds, and the OpenTelemetry GenAI histograms.
