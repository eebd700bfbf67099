"""The ClickHouse backend: the same typed queries answered by ClickHouse SQL (#17).

`connection` reaches a server (http/https) or runs ClickHouse in-process (chdb) through
clickhouse-connect; `schema` creates and versions the tables; `rows` turns validated event
batches into Arrow tables for inserts; `filter_sql` compiles the filter language to SQL; the
query families each have a module; `backend.ClickHouseBackend` implements the query layer's
`Backend` protocol over them.

Thread rule: see each module; a `ClickHouse` connection is safe from any thread.
"""
