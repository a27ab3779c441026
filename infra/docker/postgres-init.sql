-- Runs once, when the services' PostgreSQL volume is first created
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
-- One database per service: each bounded context owns its data. The services'
-- DATABASE_URL ends in concerto_{service}; the runtime fills in the name.
CREATE DATABASE concerto_order;
CREATE DATABASE concerto_payment;
CREATE DATABASE concerto_fulfillment;
CREATE DATABASE concerto_loyalty;
CREATE DATABASE concerto_monitor;
