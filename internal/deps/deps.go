// Package deps pins the module's chosen dependencies while packages that use them are written.
package deps

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	_ "github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	_ "github.com/Azure/go-amqp"
	_ "github.com/labstack/echo/v4"
	_ "github.com/robfig/cron/v3"
)
