// A server on Centrifugo's engine, the `centrifuge` Go library (Debian's
// golang-github-centrifugal-centrifuge-dev, built offline with Debian's Go
// packages: `cargo xtask bench brokers` builds it into target/peers/):
// the `brokers` suite's Centrifuge subject, written as the library's
// examples write one.
//
// Usage: centrifuge PORT [--redis [redis://]HOST:PORT]
//
// Clients connect at /connection/websocket (JSON protocol), anyone may
// subscribe to any channel and publish into it. With --redis, several
// processes share their publications through Redis (the library's
// RedisBroker): a scale-out past one process's descriptors.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/centrifugal/centrifuge"
)

func main() {
	redis := flag.String("redis", "", "Redis HOST:PORT shared by several processes")
	flag.Usage = func() { fmt.Fprintln(os.Stderr, "usage: centrifuge PORT [--redis HOST:PORT]") }
	if len(os.Args) < 2 {
		flag.Usage()
		os.Exit(2)
	}
	port := os.Args[1]
	_ = flag.CommandLine.Parse(os.Args[2:])

	node, err := centrifuge.New(centrifuge.DefaultConfig)
	if err != nil {
		log.Fatal(err)
	}
	if *redis != "" {
		address := strings.TrimPrefix(*redis, "redis://")
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: address})
		if err != nil {
			log.Fatal(err)
		}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Shards: []*centrifuge.RedisShard{shard}})
		if err != nil {
			log.Fatal(err)
		}
		node.SetBroker(broker)
	}
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		// Anonymous clients: no token to check.
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(client *centrifuge.Client) {
		client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		client.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}
	http.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}))
	server := &http.Server{Addr: "127.0.0.1:" + port}
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
		<-signals
		_ = server.Shutdown(context.Background())
		_ = node.Shutdown(context.Background())
	}()
	fmt.Fprintf(os.Stderr, "listening on 127.0.0.1:%s\n", port)
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
