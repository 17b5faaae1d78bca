-- Northwind Bank demo database (fictional people, made-up numbers) for the account_lookup tool.
-- agentmill builds it once into its cache and opens it read-only; edit this file to change it.
-- Balances: checking and savings hold money (>= 0); a credit account's balance is what is owed (<= 0).

CREATE TABLE customers (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE
);

CREATE TABLE accounts (
    account_id  TEXT PRIMARY KEY CHECK (account_id GLOB 'NW-[0-9][0-9][0-9][0-9][0-9]'),
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    type        TEXT NOT NULL CHECK (type IN ('checking', 'savings', 'credit')),
    balance     REAL NOT NULL,
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    status      TEXT NOT NULL CHECK (status IN ('active', 'frozen')),
    opened      DATE NOT NULL
);

INSERT INTO customers (id, name, email) VALUES
    (1,  'Maria Alvarez',      'maria.alvarez@example.com'),
    (2,  'James Okafor',       'james.okafor@example.com'),
    (3,  'Priya Raman',        'priya.raman@example.com'),
    (4,  'Tomasz Kowalski',    'tomasz.kowalski@example.com'),
    (5,  'Emily Chen',         'emily.chen@example.com'),
    (6,  'Daniel Brooks',      'daniel.brooks@example.com'),
    (7,  'Aisha Bello',        'aisha.bello@example.com'),
    (8,  'Lukas Schmidt',      'lukas.schmidt@example.com'),
    (9,  'Sofia Rossi',        'sofia.rossi@example.com'),
    (10, 'Hiroshi Tanaka',     'hiroshi.tanaka@example.com'),
    (11, 'Grace Mensah',       'grace.mensah@example.com'),
    (12, 'Oliver Grant',       'oliver.grant@example.com'),
    (13, 'Fatima Haddad',      'fatima.haddad@example.com'),
    (14, 'Noah Williams',      'noah.williams@example.com'),
    (15, 'Chloe Dubois',       'chloe.dubois@example.com'),
    (16, 'Samuel Adeyemi',     'samuel.adeyemi@example.com'),
    (17, 'Hannah Lindqvist',   'hannah.lindqvist@example.com'),
    (18, 'Rafael Souza',       'rafael.souza@example.com'),
    (19, 'Mei Lin Wong',       'meilin.wong@example.com'),
    (20, 'Patrick O''Neill',   'patrick.oneill@example.com'),
    (21, 'Leila Karimi',       'leila.karimi@example.com'),
    (22, 'Ethan Novak',        'ethan.novak@example.com'),
    (23, 'Isabel Moreno',      'isabel.moreno@example.com'),
    (24, 'Victor Petrov',      'victor.petrov@example.com'),
    (25, 'Zoe Campbell',       'zoe.campbell@example.com');

INSERT INTO accounts (account_id, customer_id, type, balance, currency, status, opened) VALUES
    ('NW-10234', 1,  'checking',  2450.75,  'USD', 'active', '2016-03-14'),
    ('NW-10235', 1,  'savings',  18300.00,  'USD', 'active', '2016-03-14'),
    ('NW-10311', 2,  'checking',   612.40,  'USD', 'active', '2019-07-02'),
    ('NW-10312', 2,  'credit',   -1250.60,  'USD', 'active', '2020-11-23'),
    ('NW-10427', 3,  'checking',  5310.05,  'USD', 'active', '2012-01-30'),
    ('NW-10428', 3,  'savings',  42775.90,  'USD', 'active', '2012-01-30'),
    ('NW-10503', 4,  'checking',   -85.20,  'USD', 'active', '2021-05-17'),
    ('NW-10588', 5,  'savings',   7600.00,  'USD', 'active', '2018-09-09'),
    ('NW-10589', 5,  'checking',  1984.33,  'USD', 'active', '2018-09-09'),
    ('NW-10642', 6,  'credit',   -4310.00,  'USD', 'frozen', '2015-02-11'),
    ('NW-10643', 6,  'checking',   150.00,  'USD', 'frozen', '2015-02-11'),
    ('NW-10710', 7,  'checking',  3275.18,  'USD', 'active', '2022-08-01'),
    ('NW-10711', 7,  'savings',   1200.00,  'USD', 'active', '2023-01-15'),
    ('NW-10795', 8,  'checking',  2890.00,  'EUR', 'active', '2017-04-20'),
    ('NW-10796', 8,  'savings',  12500.00,  'EUR', 'active', '2017-04-20'),
    ('NW-10850', 9,  'checking',   745.62,  'EUR', 'active', '2020-02-28'),
    ('NW-10913', 10, 'savings',  95210.44,  'USD', 'active', '2009-10-05'),
    ('NW-10914', 10, 'checking', 11020.10,  'USD', 'active', '2009-10-05'),
    ('NW-10915', 10, 'credit',    -512.35,  'USD', 'active', '2014-06-18'),
    ('NW-11002', 11, 'checking',   430.00,  'USD', 'active', '2024-03-11'),
    ('NW-11058', 12, 'checking',  6120.90,  'GBP', 'active', '2019-12-02'),
    ('NW-11059', 12, 'credit',    -980.00,  'GBP', 'active', '2021-04-07'),
    ('NW-11134', 13, 'savings',  23450.00,  'USD', 'active', '2013-08-26'),
    ('NW-11135', 13, 'checking',  2215.47,  'USD', 'active', '2013-08-26'),
    ('NW-11207', 14, 'checking',    58.12,  'USD', 'active', '2025-01-09'),
    ('NW-11266', 15, 'checking',  1530.00,  'EUR', 'active', '2018-05-30'),
    ('NW-11267', 15, 'savings',   8800.25,  'EUR', 'frozen', '2018-05-30'),
    ('NW-11341', 16, 'checking',  4102.66,  'USD', 'active', '2016-11-12'),
    ('NW-11342', 16, 'credit',   -2745.80,  'USD', 'active', '2017-02-03'),
    ('NW-11409', 17, 'savings',  61300.00,  'USD', 'active', '2011-09-19'),
    ('NW-11477', 18, 'checking',   920.00,  'USD', 'active', '2022-10-24'),
    ('NW-11530', 19, 'checking',  3605.55,  'USD', 'active', '2015-07-07'),
    ('NW-11531', 19, 'savings',  15000.00,  'USD', 'active', '2015-07-07'),
    ('NW-11602', 20, 'credit',    -125.99,  'USD', 'active', '2023-06-21'),
    ('NW-11603', 20, 'checking',  2010.00,  'USD', 'active', '2023-06-21'),
    ('NW-11688', 21, 'checking',  7340.80,  'USD', 'active', '2014-04-14'),
    ('NW-11745', 22, 'checking',   312.45,  'USD', 'frozen', '2021-12-13'),
    ('NW-11810', 23, 'savings',   5025.00,  'USD', 'active', '2020-07-29'),
    ('NW-11873', 24, 'checking', 13890.00,  'USD', 'active', '2010-03-03'),
    ('NW-11944', 25, 'checking',  1175.30,  'USD', 'active', '2024-09-16');
