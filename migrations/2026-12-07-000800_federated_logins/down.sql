DROP TABLE federated_logins;
