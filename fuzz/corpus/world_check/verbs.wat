(component (import "airlock:verbs/types@0.1.0" (instance)) (import "airlock:verbs/log@0.1.0" (instance)) (import "airlock:verbs/sign@0.1.0" (instance)))
