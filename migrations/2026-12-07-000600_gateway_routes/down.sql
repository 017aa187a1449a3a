DROP TABLE gateway_routes;
