package delivery

const childEnv = "TOKENSERVER_DELIVERY_CHILD"

func runChildServer() int { return 0 }
