"""Real Apache Kafka (KRaft) and Elasticsearch 8 for tests, developers and users.

``python -m tests.infra fetch|up|down|status`` by hand; ``tests.infra.fixtures`` for pytest.
Nothing here is imported by the product; heavy modules are imported only when services start.
"""
