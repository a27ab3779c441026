from concerto_dev_issuer.app import main

main()
