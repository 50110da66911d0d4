//! The Responses SSE vocabulary, normalised: upstream events in, a small list of happenings
//! (text, reasoning, tool-call pieces, the end) out, shared by both streaming translators.
