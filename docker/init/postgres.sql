-- Run once by the postgres image, in the database POSTGRES_DB (shop), when
-- its data volume is new. The pipeline captures shop's tables and keeps
-- MariaDB's inventory tables in the database inventory made here.
CREATE TABLE customers (
    id     int PRIMARY KEY,
    name   text NOT NULL,
    city   text,
    since  date NOT NULL
);
CREATE TABLE orders (
    id       bigint PRIMARY KEY,
    customer int NOT NULL REFERENCES customers,
    total    numeric(10, 2) NOT NULL,
    placed   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers
SELECT g, 'customer ' || g, (ARRAY['Lisbon', 'Oslo', 'Quito'])[1 + g % 3], DATE '2024-01-01' + g
FROM generate_series(1, 100) g;
INSERT INTO orders (id, customer, total)
SELECT g, 1 + g % 100, (g % 50) * 1.25
FROM generate_series(1, 500) g;

-- The target of the MariaDB -> PostgreSQL flow (the sink creates its tables).
CREATE DATABASE inventory;
