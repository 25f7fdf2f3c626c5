"""The recording wing: what happens to a record after the proxy answered.

A record (the proxy's hand-off, docs/architecture.md) reaches `store.save_records`
in the writer process. `rows` turns it into column values (pure), `linking` and
`message_hashes` say what it continues, `conversation_index` finds the earlier
rows it links to, `aggregates` keeps the hourly sums, and `bulk` builds the
INSERTs. `relink` and `reprice` redo links and costs over stored rows.
"""
