(component (import "wasi:sockets/tcp@0.2.6" (instance)) (import "wasi:http/outgoing-handler@0.2.6" (instance)))
