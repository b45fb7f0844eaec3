"""The append-only event log: every step of every call and every agent state change, stored in
one SQL table with the call id, queue, agent and a timestamp. Writes are batched and run off the
event loop; reads are for the API, reports and tests."""
