-- Run once by the mariadb image when its data volume is new. The pipeline
-- captures the tables of the database inventory (snapshot, then the row
-- binlog).
CREATE DATABASE IF NOT EXISTS inventory;
USE inventory;
CREATE TABLE products (
    id     int PRIMARY KEY,
    name   varchar(100) NOT NULL,
    price  decimal(10, 2) NOT NULL,
    added  datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
);
CREATE TABLE stock (
    product   int NOT NULL,
    warehouse varchar(20) NOT NULL,
    quantity  int NOT NULL,
    PRIMARY KEY (product, warehouse)
);
INSERT INTO products (id, name, price) VALUES
    (1, 'kettle', 24.90),
    (2, 'teapot', 18.50),
    (3, 'mug', 6.00),
    (4, 'tea towel', 4.25),
    (5, 'tray', 12.00);
INSERT INTO stock VALUES
    (1, 'lisbon', 12), (1, 'oslo', 3),
    (2, 'lisbon', 7), (3, 'quito', 40),
    (4, 'oslo', 25), (5, 'quito', 9);
